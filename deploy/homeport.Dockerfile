# Homeport's services for Kubernetes: the admin website, the conference
# service, group sync and the audit bots (`homeport render --target kubernetes`
# names homeport:<version> by default).
#
#   docker build -f deploy/homeport.Dockerfile -t homeport:0.1.0 .
#
# python-ldap and psycopg2 build against OpenLDAP's, Cyrus SASL's and libpq's
# headers in the first stage; the second keeps only their libraries. The
# versions are those the tests ran with (constraints.txt). Dependencies come
# before Homeport's own code, so that a change to the code rebuilds one wheel.
FROM python:3.11-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libldap2-dev libsasl2-dev libpq-dev \
 && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml constraints.txt /src/
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('/src/pyproject.toml', 'rb'))['project']['dependencies']))" > /src/requirements.txt \
 && pip wheel --no-cache-dir --wheel-dir /wheels/dependencies -c /src/constraints.txt -r /src/requirements.txt
COPY README.md /src/
COPY homeport /src/homeport
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels/homeport /src

FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends libldap-2.5-0 libsasl2-2 libpq5 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels/dependencies /wheels/dependencies
RUN pip install --no-cache-dir --no-index /wheels/dependencies/* && rm -rf /wheels/dependencies
COPY --from=build /wheels/homeport /wheels/homeport
RUN pip install --no-cache-dir --no-index --no-deps /wheels/homeport/* && rm -rf /wheels
# The user the manifests run it as (runAsUser 10001); its data folder is /data.
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /data homeport
USER 10001:10001
WORKDIR /data
ENTRYPOINT []
CMD ["python", "-m", "homeport", "--help"]
