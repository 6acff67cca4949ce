"""Running the master pipeline: the vocabulary (``vocab``), the pure plan (``plan``), the run's context
(``context``) and the runner that executes a plan (``runner``)."""
