# The production image: the same `kyufu` commands as local development, configured by environment.
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /srv/kyufu
COPY requirements.lock pyproject.toml setup.py ./
# Only the service's dependencies (pyproject's [project] dependencies), at the versions requirements.lock
# pins. The lock also holds the `dev` and `test` extras (embedded servers, faker, the suite's tools); the
# image leaves them out, as it leaves out devtools/ (the demo, benches and the bank simulator).
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" \
        > /tmp/production.txt \
    && pip install --no-cache-dir -c requirements.lock -r /tmp/production.txt && rm /tmp/production.txt
COPY app ./app
COPY workers ./workers
COPY payouts ./payouts
COPY migrations ./migrations
# The C parts are compiled here: payouts/_fastrender.c (the payout stage's per-row loop, against OpenSSL)
# and app/registry/_residentcsv.c (the registry import's line checks); the compiler and headers are
# removed again, the runtime libssl3 of the base image stays.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev libssl-dev \
    && pip install --no-cache-dir --no-deps . \
    && apt-get purge -y --auto-remove gcc libc6-dev libssl-dev && rm -rf /var/lib/apt/lists/* \
    && (cd / && python -c "import payouts._fastrender, app.registry._residentcsv") \
    && useradd --system --home /srv/kyufu kyufu \
    && mkdir -p /var/lib/kyufu/outbox && chown kyufu /var/lib/kyufu/outbox
USER kyufu
# The package is installed into site-packages; its migrations are this copy (`kyufu db migrate` refuses to
# run with none).
ENV KYUFU_ENV=production KYUFU_OUTBOX_DIR=/var/lib/kyufu/outbox KYUFU_MIGRATIONS_DIR=/srv/kyufu/migrations
EXPOSE 8000
CMD ["kyufu", "serve", "--host", "0.0.0.0", "--port", "8000"]
