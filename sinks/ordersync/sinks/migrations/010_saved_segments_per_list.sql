-- A saved segment's name is unique within its list, not across lists: saving "VIPs" for list 1 must
-- never replace list 2's "VIPs" (an account may see only some lists). NULL (every list) is one list here.
ALTER TABLE saved_segments DROP CONSTRAINT saved_segments_name_key;
ALTER TABLE saved_segments ADD CONSTRAINT saved_segments_list_name_key UNIQUE NULLS NOT DISTINCT (list_id, name);
