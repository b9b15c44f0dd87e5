-- description: Duplicate deliveries stored: rows versus distinct event_id (the views dedupe them)
SELECT count(*) AS rows_stored,
       count(DISTINCT event_id) AS distinct_events,
       count(*) - count(DISTINCT event_id) AS duplicate_rows,
       count(DISTINCT "$path") AS files
FROM ${table}_changes
