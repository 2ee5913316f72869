"""A GPU engine for floe's GPU snapshot check: PyTorch, weights on the GPU.

    python3 torch_engine.py PORT MIB

Initialisation imports torch, creates a CUDA context and fills MIB MiB of
GPU memory with seeded random "weights" (the slow part a snapshot skips).
GET /health answers 200 once ready; GET /infer runs a matmul on the GPU and
returns checksums of the weights and of the result, which must be identical
for a fresh and a restored replica; a counter of requests served survives
the snapshot. One line per request goes to stderr (the replica log).
"""
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

t0 = time.time()
import torch  # noqa: E402

port, mib = int(sys.argv[1]), int(sys.argv[2])
torch.manual_seed(1234)
weights = torch.randn(mib * 1024 * 1024 // 4, device="cuda")
x = torch.randn(1024, device="cuda")
torch.cuda.synchronize()
init_s = time.time() - t0
served = 0
print(f"torch_engine: ready in {init_s:.2f} s, {mib} MiB on {torch.cuda.get_device_name(0)}",
      file=sys.stderr, flush=True)


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        global served
        served += 1
        if self.path == "/health":
            body = b"ok"
        else:
            y = (weights[: 1024 * 1024].view(1024, 1024) @ x).double().sum().item()
            body = json.dumps({
                "pid": os.getpid(),
                "weights_checksum": weights[:: 4096].double().sum().item(),
                "result": y,
                "gpu_mib": torch.cuda.memory_allocated() >> 20,
                "served": served,
                "init_s": init_s,
            }).encode()
            print(f"torch_engine: request {served} answered", file=sys.stderr, flush=True)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


HTTPServer(("127.0.0.1", port), H).serve_forever()
