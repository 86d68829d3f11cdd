"""Hostile input shared by the integration tests.

STRICT: votes that other JSON readers would read differently from json-c, or
that C would cut short: (body, error name, why). One codec rejects them on
every path (HTTP, replay, the consumer) under that name.
"""

FORGED = 'level=error msg="forged"'  # a log record, if a value could end one

STRICT = [
    (b'{"user_id":1,"candidate_id":2,"user_id":3}', "duplicate_key", "last one wins in json-c"),
    (b'{"user_id":1,"candidate_id":2,"user\\u005fid":3}', "duplicate_key", "same key, escaped"),
    (b'{"user_id\\u0000x":5,"user_id":1,"candidate_id":2}', "nul_in_string", "C key is user_id"),
    (b'{"user_id":1,"candidate_id":2,"note":"a\\u0000b"}', "nul_in_string", "value cut at NUL"),
    (b'{"user_id":1,"candidate_id":2,"ts":-1}', "out_of_range", "negative time"),
    (b'{"user_id":1,"candidate_id":2,"ts":1.5}', "wrong_type", "not an integer"),
    (b'{"user_id":1,"candidate_id":2,"ts":null}', "wrong_type", "null is not a time"),
    (b'{"user_id":1,"candidate_id":2,"event_id":"0b7e5d1c-3c1a-4a57-9a6e-2f3c4d5e6f70'
     b'\\u0000junk"}', "invalid_event_id", "UUID only up to the NUL"),
    (b'{"user_id":1,"candidate_id":2,"token":"vote_lock:1:2\\u0000x"}', "token_mismatch",
     "token only up to the NUL"),
]
