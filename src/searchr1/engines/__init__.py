"""Generation engines behind one interface: SGLang over HTTP (Miles, eval) and the in-process CPU engine."""
