"""The read-only web UI (``company-activity serve``) and the one-file HTML report (``… report``).

Needs the ``ui`` extra (``pip install 'company-activity[ui]'``): FastAPI, uvicorn, Jinja2 and plotly (whose
bundled ``plotly.min.js`` the app serves itself: a page fetches nothing from anywhere else).
"""
