"""Fills a freshly provisioned Samba domain before its first start (tests/samba_server.py).

Run by Debian's system python3, whose `samba` bindings (python3-samba) write
straight into sam.ldb: 1,600 accounts in about 2 s, where `samba-tool user
create` takes 2 s for each. Not imported by the tests; only `tests/samba_server.py`
runs it: `/usr/bin/python3 tests/samba_seed.py SMB_CONF SPEC_JSON`.
"""

from __future__ import annotations

import json
import sys

from samba.auth import system_session  # type: ignore[import-not-found]
from samba.param import LoadParm  # type: ignore[import-not-found]
from samba.samdb import SamDB  # type: ignore[import-not-found]


def main(conf: str, spec_json: str) -> None:
    spec = json.loads(spec_json)
    lp = LoadParm()
    lp.load(conf)
    db = SamDB(url=lp.samdb_url(), session_info=system_session(), lp=lp)
    base = str(db.domain_dn())
    # No complexity rule, history or minimum age: tests set whatever passwords they like.
    db.modify_ldif(
        f"dn: {base}\nchangetype: modify\n"
        "replace: pwdProperties\npwdProperties: 0\n-\n"
        "replace: minPwdLength\nminPwdLength: 0\n-\n"
        "replace: minPwdAge\nminPwdAge: 0\n-\n"
        "replace: pwdHistoryLength\npwdHistoryLength: 0\n"
    )
    entries = [f"dn: OU={ou},{base}\nobjectClass: organizationalUnit\n" for ou in spec["ous"]]
    bulk_ou = f"OU={spec['bulk_ou']},{base}"
    names = [f"{spec['bulk_prefix']}{i:04d}" for i in range(spec["bulk_members"])]
    entries += [
        f"dn: CN={name},{bulk_ou}\nobjectClass: user\nsAMAccountName: {name}\n"
        "userAccountControl: 544\n"  # an enabled account that needs no password
        for name in names
    ]
    entries.append(
        f"dn: CN={spec['bulk_group']},{bulk_ou}\nobjectClass: group\n"
        f"sAMAccountName: {spec['bulk_group']}\n"
        + "".join(f"member: CN={name},{bulk_ou}\n" for name in names)
    )
    db.transaction_start()
    try:
        db.add_ldif("\n".join(entries))
        reader, password, ou = spec["reader"]
        db.newuser(reader, password, userou=f"OU={ou}", useusernameascn=True)
    except BaseException:
        db.transaction_cancel()
        raise
    db.transaction_commit()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
