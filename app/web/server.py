"""Serving the portal with gunicorn (`forewarn web`)."""

from gunicorn.app.base import BaseApplication

from app.core.config import Settings


class PortalServer(BaseApplication):
    def __init__(self, settings: Settings, workers: int = 2):
        self.settings = settings
        self.workers = workers
        super().__init__()

    def load_config(self):
        self.cfg.set("bind", [str(self.settings.web_listen)])
        self.cfg.set("workers", self.workers)
        self.cfg.set("graceful_timeout", 5)
        self.cfg.set("timeout", 60)
        self.cfg.set("accesslog", "-")
        self.cfg.set("proc_name", "forewarn-web")
        if "control_socket_disable" in self.cfg.settings:
            # gunicorn 24+ opens a control socket in $HOME by default; we don't use it.
            self.cfg.set("control_socket_disable", True)

    def load(self):
        # Imported when gunicorn loads the portal in each worker, not when the command starts.
        from app.web import create_app

        return create_app(self.settings)
