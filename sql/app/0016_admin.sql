-- Placeholder on branch i15/audit only, so that 0017 applies here; the real
-- file is admin-core's (branch i15/core), which replaces this one at merge.
SELECT 1;
