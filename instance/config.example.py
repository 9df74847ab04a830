# Copy to instance/config.py to override the defaults for this installation.
# SQLALCHEMY_DATABASE_URI = "sqlite:////absolute/path/to/cms_media_demo.db"
# CMS_MEDIA_MAX_UPLOAD_BYTES = 50 * 1024 * 1024
# CMS_MEDIA_PAGE_SIZE = 60
