-- description: Deletes made by DynamoDB TTL versus by the application (distinct events)
SELECT CASE WHEN is_ttl_delete THEN 'ttl' ELSE 'user' END AS deleted_by,
       count(DISTINCT event_id) AS deletes,
       count(DISTINCT item_key) AS items,
       min(event_time) AS first_delete,
       max(event_time) AS last_delete
FROM ${table}_changes
WHERE event_name = 'REMOVE'
GROUP BY CASE WHEN is_ttl_delete THEN 'ttl' ELSE 'user' END
ORDER BY deleted_by
