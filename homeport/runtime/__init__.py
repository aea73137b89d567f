"""`homeport up` and the commands that steer it: a supervisor over any Service.

Synapse is one kind of service, the admin website another; each capability
that runs code of its own registers its service in `registry.py`.
"""
