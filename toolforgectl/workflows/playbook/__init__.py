"""The playbook engine: playbooks/<operation>.yaml (spec), the steps they name (steps, catalog),
and the runner that gives every operation its lock, plan, confirmation, dry run, audit, resume
and rollback (runner, lock, state, report). docs/playbooks.md is the guide."""
