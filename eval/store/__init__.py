"""The results store: runs in SQLite, their rows, the database connection, each run's files and
exports."""
