"""Plain functions that change data; shared by views, jobs and CLI commands."""
