"""The analysts' web console: server-rendered pages under /console/.

`pipeline.web.console.routes.install(app)` adds the pages, the static files, the
security headers and the console's error pages to the web app.
"""
