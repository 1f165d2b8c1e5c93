-- Intake under a surge: the dispatcher asks for outbox rows never enqueued (workers.outbox.DUE_NEW)
-- after every few batches. Without this index that query walks every row not yet done, and during a
-- surge nothing marks rows done (verification runs behind), so each dispatch got slower as the
-- backlog grew. Rows leave the index as soon as they are enqueued.
CREATE INDEX outbox_unsent ON outbox (municipality_code, outbox_id) WHERE done_at IS NULL AND enqueued_at IS NULL;
