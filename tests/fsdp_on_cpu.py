"""``compress`` with Accelerate's FSDP on CPU processes, for tests/test_fsdp.py:
``accelerate launch --config_file <fsdp config> tests/fsdp_on_cpu.py run <pipeline> ...``.

Accelerate 1.16 turns ``distributed_type: FSDP`` into ``MULTI_CPU`` (plain data parallelism) when the processes
run on CPU: AcceleratorState promotes to FSDP only the GPU-like distributed types. PyTorch's FSDP2
(``fully_shard``) itself shards on CPU over gloo, so this entry point makes the one promotion Accelerate skips,
exactly as it does on GPUs (the plugin it built from the launcher's FSDP_* variables), and then runs the CLI.
Everything else, the wrapping, the all-gathers, get_state_dict, save_state and load_state, is Accelerate's and
PyTorch's own code.
"""

import os

from accelerate.state import AcceleratorState, PartialState
from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

_init = AcceleratorState.__init__


def _init_with_fsdp_on_cpu(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    # after the first Accelerator, PartialState (kept across AcceleratorState._reset_state) already says FSDP
    cpu_processes = self.distributed_type in (DistributedType.MULTI_CPU, DistributedType.FSDP) and self.device.type == "cpu"
    if cpu_processes and os.environ.get("ACCELERATE_USE_FSDP") == "true":
        if self.__dict__.get("fsdp_plugin") is None:
            self.fsdp_plugin = kwargs.get("fsdp_plugin") or FullyShardedDataParallelPlugin()
        self.distributed_type = DistributedType.FSDP
        PartialState._shared_state["distributed_type"] = DistributedType.FSDP


AcceleratorState.__init__ = _init_with_fsdp_on_cpu

if __name__ == "__main__":
    from compress.cli import main

    main()
