"""Raw landing: the API's pages of a day as received, in the lake, with their manifest (written last);
the local spools of their validated records; the quarantine of the records over the project's own limits
(:mod:`.quarantine`, ``_quarantine.json`` beside the pages). The CRM quarantine is written by the engine's
CRM load (:mod:`company_activity.warehouse.crm_load`), next to the snapshot it comes from."""
