"""unidesk's store: SQLAlchemy 2 async models, repositories and migrations.

Imports nothing else of unidesk. Repositories take a session and a tenant id
and never commit: the caller owns the transaction.
"""
