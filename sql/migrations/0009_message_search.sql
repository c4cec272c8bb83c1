-- Message search (issue 12): Postgres full-text search over text messages,
-- for English and Korean.
--
-- Postgres has no Korean parser, and Korean words carry particles
-- ("서울에서" = 서울 + 에서), so a search for 서울 must match inside a word.
-- Two choices were on the table: pg_trgm (available here) or character
-- bigrams in a tsvector. Bigrams win: they stay in the tsvector world, so
-- ranking (ts_rank), highlighting (ts_headline) and English stemming come
-- from one @@ query and one GIN index, while pg_trgm would need a second
-- index, a similarity threshold and its own ranking. A message's document
-- is its English vector (stemmed: "running" matches "run") plus a 'simple'
-- vector of its Hangul bigrams ('서울에서' -> 서울 울에 에서); a query is
-- built the same way, its bigrams AND-ed, so 서울 finds 서울에서.
--
-- The document is an expression index, not a generated column: a stored
-- column would add a tsvector to every SELECT * of chat.messages (history,
-- sync: the hot read path) and rewrite the table; the index build is the
-- backfill of existing messages, and a query recomputes the vector only for
-- the rows it ranks. Only kind 'text' is indexed: gaps, system and
-- transfer messages are never search results.

-- hangul_bigrams returns the bigrams of each run of Hangul in t, space
-- separated (a one-syllable run is kept whole).
CREATE FUNCTION chat.hangul_bigrams(t text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    run text;
    grams text[] := '{}';
    i int;
BEGIN
    FOR run IN SELECT (regexp_matches(t, '[\uAC00-\uD7A3\u3131-\u318E]+', 'g'))[1] LOOP
        IF char_length(run) = 1 THEN
            grams := grams || run;
        ELSE
            FOR i IN 1 .. char_length(run) - 1 LOOP
                grams := grams || substr(run, i, 2);
            END LOOP;
        END IF;
    END LOOP;
    RETURN array_to_string(grams, ' ');
END
$$;

-- search_doc is a message body's search document.
CREATE FUNCTION chat.search_doc(body text) RETURNS tsvector
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT to_tsvector('english'::regconfig, body)
        || to_tsvector('simple'::regconfig, chat.hangul_bigrams(body))
$$;

-- search_query is the tsquery of a user's search: the English words
-- (stemmed, AND-ed) and the Hangul bigrams (AND-ed) must all match.
CREATE FUNCTION chat.search_query(q text) RETURNS tsquery
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT plainto_tsquery('english'::regconfig, regexp_replace(q, '[\uAC00-\uD7A3\u3131-\u318E]+', ' ', 'g'))
        && plainto_tsquery('simple'::regconfig, chat.hangul_bigrams(q))
$$;

CREATE INDEX messages_search ON chat.messages USING gin (chat.search_doc(body)) WHERE kind = 'text';
