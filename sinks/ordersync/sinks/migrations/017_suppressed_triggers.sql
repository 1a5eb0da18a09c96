-- Marketing triggers withheld because the contact had not given consent (topic triggers.suppressed,
-- docs/privacy.md): never delivered, counted per kind on the Automations page. Same shape as triggers.
CREATE TABLE suppressed_triggers (LIKE triggers INCLUDING ALL);
