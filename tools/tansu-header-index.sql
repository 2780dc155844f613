-- Tansu 0.6.0's SQLite storage has no index on message headers, so every record it fetches scans
-- every header it holds: a topic slows down as it grows (20x at 10,000 objects). Run once against
-- its database after it has started: sqlite3 -cmd '.timeout 10000' tansu.db < tools/tansu-header-index.sql
create index if not exists header_topition_offset on header (topition, offset_id);
