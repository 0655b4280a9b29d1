"""Going public: the public view, the lift, announcements, feeds, exports."""
