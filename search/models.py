# Trace models arrive with extraction (#4).
