"""Writes of the evidence app. Each service checks the access policy, changes state, and writes its audit
row in the same transaction; none of them ever puts a data key or secret value in a message or log."""
