-- description: Distinct changes per event-time hour by kind, and the rows stored for them
-- param: since_dt string default 1970-01-01
SELECT dt, hour,
       count(DISTINCT event_id) AS changes,
       count(DISTINCT CASE WHEN event_name = 'INSERT' THEN event_id END) AS inserts,
       count(DISTINCT CASE WHEN event_name = 'MODIFY' THEN event_id END) AS modifies,
       count(DISTINCT CASE WHEN event_name = 'REMOVE' THEN event_id END) AS removes,
       count(*) AS rows_stored
FROM ${table}_changes
WHERE dt >= ?
GROUP BY dt, hour
ORDER BY dt, hour
