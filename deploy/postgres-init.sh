#!/bin/sh
# Runs once when the postgres container initialises its data directory: the two kyufu roles.
# The owner runs migrations and owns the tables; the app role owns nothing and has no BYPASSRLS.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres <<SQL
CREATE ROLE kyufu_owner LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD '${KYUFU_OWNER_PASSWORD}';
CREATE ROLE kyufu_app LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE PASSWORD '${KYUFU_APP_PASSWORD}';
CREATE DATABASE kyufu OWNER kyufu_owner;
SQL
