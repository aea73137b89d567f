# Synapse with Homeport's module (homeport.synapse_module.module): the image that
# `homeport render --target kubernetes` names by default.
#
#   docker build -f deploy/synapse.Dockerfile -t homeport-synapse:1.163.2 .
#
# The module needs Synapse (and its pydantic) and, for group sync's directory
# logins (homeport.synapse_module.directory_login), python-ldap: the package goes in
# without its other dependencies (the CLI's are not needed here).
ARG SYNAPSE_VERSION=1.163.2
FROM ghcr.io/element-hq/synapse:v${SYNAPSE_VERSION}
# python-ldap builds against OpenLDAP's headers, which leave the image afterwards
# with the compiler; the libraries its module links stay, found with ldd rather
# than named: upstream's image moves between Debian releases, which name them
# differently (libldap-2.5-0 on bookworm, libldap2 on trixie).
RUN saved="$(apt-mark showmanual)" \
 && apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev libldap-dev libsasl2-dev \
 && pip install --no-cache-dir "python-ldap==3.4.8" \
 && apt-mark auto '.*' > /dev/null \
 && { [ -z "$saved" ] || apt-mark manual $saved > /dev/null; } \
 && find /usr/local -type f -name '*.so' -exec ldd '{}' ';' \
    | awk '/=>/ { so = $(NF-1); if (index(so, "/usr/local/") == 1) next; gsub("^/(usr/)?", "", so); print "*" so }' \
    | sort -u | { xargs -r dpkg-query --search 2>/dev/null || true; } \
    | cut -d: -f1 | sort -u | xargs -r apt-mark manual > /dev/null \
 && apt-get purge -y --auto-remove -o APT::AutoRemove::RecommendsImportant=false \
 && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md /src/homeport/
COPY homeport /src/homeport/homeport
RUN pip install --no-cache-dir --no-deps /src/homeport && rm -rf /src/homeport
USER 991:991
