-- search_doc without the Hangul step for bodies that hold no Hangul (issue 13).
--
-- Postgres computes a message's search document on every insert into
-- chat.messages (the GIN expression index of 0013). For a body without
-- Hangul, chat.hangul_bigrams returns '' and the 'simple' half of the
-- document is empty, yet the plpgsql call and its regexp_matches loop cost
-- more than the English half: 17.6 against 6 µs per message of the load
-- generator's body, 35.5 against 20.7 µs for an English sentence
-- (BENCHMARKS.md round 8). The test below is hangul_bigrams' own regex, so
-- a body it passes over is exactly a body whose bigrams are '', and the
-- document is the English vector alone: the same value as before, so the
-- index built with the old definition stays valid (activities'
-- TestSearchDocFastPathSameDocument compares the two on every kind of body).
-- Not STRICT any more: Postgres inlines a STRICT SQL function only when its
-- body is strict, and a CASE is not, so a STRICT version ran as a function
-- call per row and cost more than it saved. A NULL body still gives NULL
-- (the ELSE branch; the test checks it).
CREATE OR REPLACE FUNCTION chat.search_doc(body text) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN body ~ '[\uAC00-\uD7A3\u3131-\u318E]'
        THEN to_tsvector('english'::regconfig, body)
            || to_tsvector('simple'::regconfig, chat.hangul_bigrams(body))
        ELSE to_tsvector('english'::regconfig, body)
    END
$$;
