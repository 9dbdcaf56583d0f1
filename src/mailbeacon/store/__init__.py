"""Storage: tables, migrations, queries and the durable hit writer."""
