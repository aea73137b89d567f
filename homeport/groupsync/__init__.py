"""Group sync: directory groups (LDAP, Active Directory) drive space membership."""
