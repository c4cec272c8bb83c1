-- chat.search_doc as migrations 0009/0013 defined it (before 0015's fast
-- path): side A of round 8's A/B (scripts/bench-ab.sh A_PG_SQL).
CREATE OR REPLACE FUNCTION chat.search_doc(body text) RETURNS tsvector
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT to_tsvector('english'::regconfig, body)
        || to_tsvector('simple'::regconfig, chat.hangul_bigrams(body))
$$;
