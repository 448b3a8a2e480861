"""Publishing a run to the hub: only global rank zero pushes.

``checks`` (token and upload verification), ``xetcheck`` (will the upload protocol work), ``uploader`` (the
background child process that commits), ``push`` (checkpoint and final pushes with retries), ``card`` (the
model card) and ``command`` (``reasoner push``, which finishes an upload a run could not).
"""
