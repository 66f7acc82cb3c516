-- Placeholder on branch i15/audit only, so that 0005 applies here; the real
-- file is platform's (branch i15/platform), which replaces this one at merge.
SELECT 1;
