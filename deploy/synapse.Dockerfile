# Synapse with Homeport's module (homeport.synapse_module.module): the image that
# `homeport render --target kubernetes` names by default.
#
#   docker build -f deploy/synapse.Dockerfile -t homeport-synapse:1.163.2 .
#
# The module needs Synapse (and its pydantic) and, for group sync's directory
# logins (homeport.synapse_module.directory_login), python-ldap: the package goes in
# without its other dependencies (the CLI's are not needed here). python-ldap
# builds against OpenLDAP's headers, which leave the image afterwards; its
# runtime library stays.
ARG SYNAPSE_VERSION=1.163.2
FROM ghcr.io/element-hq/synapse:v${SYNAPSE_VERSION}
COPY pyproject.toml README.md /src/homeport/
COPY homeport /src/homeport/homeport
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libldap2-dev libsasl2-dev \
 && pip install --no-cache-dir --no-deps /src/homeport \
 && pip install --no-cache-dir "python-ldap==3.4.8" \
 && apt-get purge -y gcc libldap2-dev libsasl2-dev && apt-get autoremove -y \
 && apt-get install -y --no-install-recommends libldap-2.5-0 libsasl2-2 \
 && rm -rf /var/lib/apt/lists/* /src/homeport
USER 991:991
