"""Reading the organisation's directory (LDAP, Active Directory): people and groups as
pure types, the python-ldap connection, reader and password check.

Group sync builds on it; directory login, inside Synapse, reads people through the
same code so that login and sync can never disagree about who someone is.
"""
