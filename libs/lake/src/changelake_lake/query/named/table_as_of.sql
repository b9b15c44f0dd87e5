-- description: Every item that existed at a moment (UTC), with its image then (the table's state as of that time)
-- param: as_of timestamp
-- param: as_of timestamp
-- param: limit bigint default 100
SELECT item_key, new_image, valid_from, valid_to, event_id
FROM ${table}_history
WHERE valid_from <= ?
  AND (valid_to IS NULL OR valid_to > ?)
  AND NOT is_removed
ORDER BY item_key
LIMIT ?
