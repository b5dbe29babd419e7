-- Every batch updates a row of balances, usage_daily and usage_hourly for each account it
-- touches. Room on each page lets PostgreSQL write the new row version beside the old one
-- without touching the indexes (a heap-only update); a batch of 5,000 debits over 10,000
-- accounts was written about 4% faster. Pages written from now on keep the room.
ALTER TABLE balances SET (fillfactor = 70);
ALTER TABLE usage_daily SET (fillfactor = 70);
ALTER TABLE usage_hourly SET (fillfactor = 70);
