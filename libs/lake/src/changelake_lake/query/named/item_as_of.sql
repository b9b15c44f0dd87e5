-- description: One item as it was at a moment (UTC): its image then, or is_removed if it was deleted; no row if it did not exist yet
-- param: item_key string
-- param: as_of timestamp
-- param: as_of timestamp
SELECT item_key, new_image, event_name, is_removed, valid_from, valid_to, event_id
FROM ${table}_history
WHERE item_key = ?
  AND valid_from <= ?
  AND (valid_to IS NULL OR valid_to > ?)
