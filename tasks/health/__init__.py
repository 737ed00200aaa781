"""Job health: each operation's last runs, beat's heartbeat, overdue schedules, the
outbox's backlog, and the /health/ endpoints that show them."""
