-- description: Every change of one item, oldest first, each event once (duplicates removed)
-- param: item_key string
SELECT event_time, event_name, event_id, changed_attributes, is_ttl_delete, new_image, old_image
FROM (
    SELECT event_time, event_name, event_id, changed_attributes, is_ttl_delete, new_image,
           old_image, sequence_number,
           row_number() OVER (PARTITION BY event_id
               ORDER BY length(sequence_number) DESC, sequence_number DESC) AS copy
    FROM ${table}_changes
    WHERE item_key = ?
)
WHERE copy = 1
ORDER BY event_time, sequence_number
