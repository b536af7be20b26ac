"""The execution record and its state machine: statuses, the allowed transitions, and the fenced
Lua scripts that apply them. Imports no RQ."""
