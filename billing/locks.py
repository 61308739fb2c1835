"""Row lock clauses shared by the queries."""

ROW_LOCKS = {None: "", "share": " for share", "update": " for update"}
