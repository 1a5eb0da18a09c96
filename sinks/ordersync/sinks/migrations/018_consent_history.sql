-- Each contact's marketing consent statements that changed it, oldest first (contact v3: consent,
-- at, source), as the processor keeps them; the contact's Activity tab shows them (docs/privacy.md).
ALTER TABLE contacts ADD COLUMN consent_history jsonb NOT NULL DEFAULT '[]';
