"""The lake's table format: layout, column policy, Arrow/Glue schema, Glue definitions, views,
named queries and the query engines that read the lake."""
