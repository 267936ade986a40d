#!/bin/sh
# Runs once, when the PostgreSQL volume is initialised: the app connects as an unprivileged role that owns only its
# database, never as the superuser. The password is read inside psql so it never shows in a process list.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres --quiet <<'SQL'
\set app_password `cat /run/secrets/app_db_password`
CREATE ROLE timetracker LOGIN PASSWORD :'app_password' NOSUPERUSER NOCREATEDB NOCREATEROLE;
ALTER DATABASE timetracker OWNER TO timetracker;
REVOKE ALL ON DATABASE timetracker FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE timetracker TO timetracker;
SQL
