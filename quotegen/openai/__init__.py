"""OpenAI's API as quotegen speaks it: ``protocol`` (the request, response and stream bodies,
their setting fields derived from the declarations) and ``format`` (the response objects
built from quotegen's results, logprobs in both APIs' shapes). The engine knows none of
OpenAI's shapes; the server's routes and OpenAI batch files use these."""
