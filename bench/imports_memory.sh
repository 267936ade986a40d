#!/usr/bin/env bash
# Peak memory of the worst imports within the size limits: for each case a fresh app process (release
# build) takes one warm-up import, then the case; the figure is how far the request raised the process's
# peak RSS (VmHWM, reset through /proc/PID/clear_refs) above its resident size before it. The contract's
# bound is about 100 MiB. Also printed: the status, the response's size, `total` of a 422, and the time.
#
#   bench/imports_memory.sh        (needs curl, python3; UPLOAD_MIB=10; ONLY=REGEX runs the matching cases)
#
# Cases (each as large as the 10 MiB upload limit allows, unless it says otherwise):
#   toggl/tempo empty items   `[{},{},...]`: 3.5 million items, three problems each (422)
#   toggl many keys           one object of a million keys, each checked for repeats (422); also with
#                             an escape in every key (copied to be compared)
#   toggl long description    one description of 5 million escapes `\n` (422: too long)
#   toggl/tempo/csv 100k      the most entries an import may hold, minimal items (200, stored)
#   toggl/tempo/csv full      10 MiB of entries as the tools export them, ~300 bytes of text each (200)
#   toggl 180k / csv 580k     minimal valid items, more than the 100,000-entry limit (422)
#   csv empty cells           rows `,,`: 3.5 million rows, three problems each (422)
set -euo pipefail
cd "$(dirname "$0")/.."

UPLOAD_MIB="${UPLOAD_MIB:-10}"
ONLY="${ONLY:-}"

. bench/lib/throwaway_app.sh
require_tools curl python3
build_app
start_throwaway_db

start_app
register bench@example.com "benchmark password"
TOKEN="$(login_token bench@example.com "benchmark password")"
AUTH="Authorization: Bearer $TOKEN"
stop_app

# The files: each case's body as sent.
python3 - "$WORK" "$UPLOAD_MIB" <<'PY'
import sys
work, mib = sys.argv[1], int(sys.argv[2])
limit = mib * 1024 * 1024

def json_array(name, item, count=None, size=limit):
    parts, length, i = [], 1, 0
    while count is None or i < count:
        text = item(i)
        if length + len(text) + 2 > size:
            break
        parts.append(text)
        length += len(text) + 1
        i += 1
    with open(f"{work}/{name}", "w") as f:
        f.write("[" + ",".join(parts) + "]")

def csv(name, row, count=None, size=limit - 512):
    lines, length, i = ["Start date,Start time,Duration"], 31, 0
    while count is None or i < count:
        text = row(i)
        if length + len(text) + 1 > size:
            break
        lines.append(text)
        length += len(text) + 1
        i += 1
    with open(f"{work}/{name}", "w") as f:
        f.write("\n".join(lines) + "\n")

toggl = lambda i: '{"id":%d,"start":"2024-03-10T09:00:00Z","duration":60}' % i
tempo = lambda i: '{"tempoWorklogId":%d,"timeSpentSeconds":60,"startDate":"2024-03-10"}' % i
json_array("empty_items.json", lambda i: "{}")
json_array("toggl_100k.json", toggl, count=100_000)
json_array("toggl_180k.json", toggl)
json_array("tempo_100k.json", tempo, count=100_000)
keys, k = ["[{"], 0
length = 2
while length < limit - 32:
    key = '"k%d":0,' % k
    keys.append(key)
    length += len(key)
    k += 1
keys.append('"id":1}]')
with open(f"{work}/many_keys.json", "w") as f:
    f.write("".join(keys))
# Keys with an escape are copied out of the document to be compared.
keys, k, length = ["[{"], 0, 2
while length < limit - 32:
    key = '"\\u006b%d":0,' % k
    keys.append(key)
    length += len(key)
    k += 1
keys.append('"id":1}]')
with open(f"{work}/many_escaped_keys.json", "w") as f:
    f.write("".join(keys))
# One description of 10 MiB of escapes.
with open(f"{work}/escaped_description.json", "w") as f:
    f.write('[{"id":1,"start":"2024-03-10T09:00:00Z","duration":60,"description":"')
    f.write("\\n" * ((limit - 100) // 2))
    f.write('"}]')
csv("csv_empty_cells.csv", lambda i: ",,")
csv("csv_580k.csv", lambda i: "2024-03-10,%d:%02d,1" % (i % 24, i % 60))
csv("csv_100k.csv", lambda i: "2024-03-10,%d:%02d:%02d,1" % (i // 3600 % 24, i // 60 % 60, i % 60), count=100_000)
# Full 10 MiB files that succeed: entries as the tools export them, with a few hundred bytes of text.
text = lambda i: ("Review of ticket %d: checked the import, wrote notes, answered questions. " % i) * 3
json_array("toggl_full.json", lambda i: (
    '{"id":%d,"workspace_id":1234567,"project_id":%d,"task_id":null,"billable":false,'
    '"start":"2024-03-%02dT09:%02d:00+00:00","stop":"2024-03-%02dT10:%02d:00+00:00","duration":3600,'
    '"description":"%s","tags":["review","imports"],"tag_ids":[1,2],"duronly":false,'
    '"at":"2024-03-31T12:00:00+00:00","server_deleted_at":null,"user_id":42,"uid":42,"wid":1234567,'
    '"project_name":"Project %d"}') % (4_000_000_000 + i, 100 + i % 50, 1 + i % 28, i % 60, 1 + i % 28, i % 60, text(i), i % 50))
json_array("tempo_full.json", lambda i: (
    '{"self":"https://api.tempo.io/4/worklogs/%d","tempoWorklogId":%d,'
    '"issue":{"self":"https://example.atlassian.net/rest/api/2/issue/%d","id":%d,"key":"PROJ-%d"},'
    '"timeSpentSeconds":3600,"billableSeconds":3600,"startDate":"2024-03-%02d","startTime":"09:%02d:00",'
    '"description":"%s","createdAt":"2024-03-31T12:00:00Z","updatedAt":"2024-03-31T12:00:00Z",'
    '"author":{"self":"https://example.atlassian.net/rest/api/2/user?accountId=abc","accountId":"abc"},'
    '"attributes":{"self":"https://api.tempo.io/4/worklogs/%d/work-attribute-values","values":[]}}')
    % (i, i, 10_000 + i % 500, 10_000 + i % 500, i % 500, 1 + i % 28, i % 60, text(i), i))
with open(f"{work}/csv_full.csv", "w") as f:
    f.write("User,Email,Client,Project,Task,Description,Billable,Start date,Start time,End date,End time,Duration,Tags,Amount (EUR)\n")
    length, i = 0, 0
    while True:
        row = ('Ann Example,ann@example.com,Client %d,Project %d,,"%s",No,2024-03-%02d,%02d:%02d:%02d,'
               '2024-03-%02d,%02d:%02d:%02d,01:00:00,review,0.00\n') % (
            i % 20, i % 50, text(i), 1 + i // 86400 % 28, i // 3600 % 24, i // 60 % 60, i % 60,
            1 + i // 86400 % 28, i // 3600 % 24, i // 60 % 60, i % 60)
        if length + len(row) > limit - 1024:
            break
        f.write(row)
        length += len(row)
        i += 1
with open(f"{work}/warmup.csv", "w") as f:
    f.write("Start date,Start time,Duration\n2024-03-10,09:00:00,01:00:00\n")
PY

# A /proc/PID/status figure in KiB.
status_kib() { awk -v field="$2:" '$1 == field { print $2 }' "/proc/$1/status"; }

printf '%-24s %6s %9s %15s %8s %8s %14s\n' case status body_MiB response_bytes total seconds peak_rise_MiB
measure() {
    local name="$1" path="$2" kind="$3" file="$4"
    [[ "$name" =~ $ONLY ]] || return 0
    start_app
    # Warm-up: code paths, the time-zone list and the pool's connection are one-time costs.
    curl -s -o /dev/null -H "$AUTH" -F "file=@$WORK/warmup.csv;type=text/csv" "$BASE/api/import/csv?tz=UTC"
    curl -s -o /dev/null -H "$AUTH" -H 'Content-Type: application/json' -d '[{}]' "$BASE/api/import/tempo?tz=UTC"
    echo 5 >"/proc/$APP_PID/clear_refs"
    local before after started ended code
    before="$(status_kib "$APP_PID" VmRSS)"
    started="$(date +%s.%N)"
    if [ "$kind" = csv ]; then
        code="$(curl -s -o "$WORK/response" -w '%{http_code}' -H "$AUTH" \
            -F "file=@$WORK/$file;type=text/csv" "$BASE$path")"
    else
        code="$(curl -s -o "$WORK/response" -w '%{http_code}' -H "$AUTH" \
            -H 'Content-Type: application/json' --data-binary "@$WORK/$file" "$BASE$path")"
    fi
    ended="$(date +%s.%N)"
    after="$(status_kib "$APP_PID" VmHWM)"
    local total
    total="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("error", {}).get("total", "-"))' "$WORK/response")"
    printf '%-24s %6s %9.2f %15s %8s %8.2f %14.1f\n' "$name" "$code" \
        "$(python3 -c "print($(stat -c %s "$WORK/$file") / 1048576)")" \
        "$(stat -c %s "$WORK/response")" "$total" \
        "$(python3 -c "print($ended - $started)")" \
        "$(python3 -c "print(($after - $before) / 1024)")"
    stop_app
}

measure "toggl empty items" /api/import/toggl json empty_items.json
measure "toggl many keys" /api/import/toggl json many_keys.json
measure "toggl many escaped keys" /api/import/toggl json many_escaped_keys.json
measure "toggl long description" /api/import/toggl json escaped_description.json
measure "toggl 180k (over limit)" /api/import/toggl json toggl_180k.json
measure "toggl 100k" /api/import/toggl json toggl_100k.json
measure "toggl full 10 MiB" /api/import/toggl json toggl_full.json
measure "tempo empty items" "/api/import/tempo?tz=UTC" json empty_items.json
measure "tempo many escaped keys" "/api/import/tempo?tz=UTC" json many_escaped_keys.json
measure "tempo 100k" "/api/import/tempo?tz=UTC" json tempo_100k.json
measure "tempo full 10 MiB" "/api/import/tempo?tz=UTC" json tempo_full.json
measure "csv empty cells" "/api/import/csv?tz=UTC" csv csv_empty_cells.csv
measure "csv 580k (over limit)" "/api/import/csv?tz=UTC" csv csv_580k.csv
measure "csv 100k" "/api/import/csv?tz=UTC" csv csv_100k.csv
measure "csv full 10 MiB" "/api/import/csv?tz=UTC" csv csv_full.csv
