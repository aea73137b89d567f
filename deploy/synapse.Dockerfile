# Synapse with Homeport's module (homeport.synapse.module): the image that
# `homeport render --target kubernetes` names by default.
#
#   docker build -f deploy/synapse.Dockerfile -t homeport-synapse:1.163.2 .
#
# The module needs nothing beyond Synapse and the standard library, so the
# package goes in without its dependencies (the CLI's are not needed here);
# the LDAP auth provider goes in for group sync's logins (the version the
# tests ran with).
ARG SYNAPSE_VERSION=1.163.2
FROM ghcr.io/element-hq/synapse:v${SYNAPSE_VERSION}
COPY pyproject.toml README.md /src/homeport/
COPY homeport /src/homeport/homeport
RUN pip install --no-cache-dir --no-deps /src/homeport \
 && pip install --no-cache-dir "matrix-synapse-ldap3==0.4.0" "ldap3==2.9.1" \
 && rm -rf /src/homeport
USER 991:991
