-- The transfer resume (workflows.ResumeTransfers) looks every minute for
-- transfers still pending a while after they were recorded: the few whose
-- saga could not be started. This index holds only those rows.
CREATE INDEX transfers_pending ON customer.transfers (created_at) WHERE status = 'pending';
