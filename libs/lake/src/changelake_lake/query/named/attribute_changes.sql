-- description: Who changed attribute X and when: every event whose changed_attributes has it
-- param: attribute string
-- param: attribute string
-- param: attribute string
-- param: limit bigint default 100
SELECT event_time, item_key, event_name,
       CASE WHEN is_ttl_delete THEN 'dynamodb-ttl' ELSE 'application' END AS changed_by,
       json_extract_scalar(old_image, concat('$.', ?)) AS old_value,
       json_extract_scalar(new_image, concat('$.', ?)) AS new_value,
       event_id
FROM (
    SELECT event_time, item_key, event_name, is_ttl_delete, old_image, new_image, event_id,
           sequence_number,
           row_number() OVER (PARTITION BY event_id
               ORDER BY length(sequence_number) DESC, sequence_number DESC) AS copy
    FROM ${table}_changes
    WHERE contains(changed_attributes, ?)
)
WHERE copy = 1
ORDER BY event_time, sequence_number
LIMIT ?
