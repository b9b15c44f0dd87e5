-- description: The latest image of every live item (the _current view: deduplicated, deletes hidden)
-- param: limit bigint default 100
SELECT *
FROM ${table}_current
ORDER BY item_key
LIMIT ?
