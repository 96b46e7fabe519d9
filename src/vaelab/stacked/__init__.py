"""Many models in one process: ``hydra/launcher=stacked`` trains a sweep's compatible jobs as
one batched computation (parameters stacked along a leading model axis, ``torch.func``), each
member exactly the model its config trains alone, each job's folder as a single run writes it.

- ``nets``: K copies of a network as one (``StackedNet``);
- ``data``: the members' batches as one ``[K, B, ...]`` batch;
- ``module``: the LightningModule of a stack;
- ``grouping``: which jobs may share a stack;
- ``training``: one stack from its jobs' configs to their folders;
- ``launch``: the Hydra launcher's work (``hydra_plugins.vaelab_stacked``).
"""
