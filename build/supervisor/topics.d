build/supervisor/topics.o: supervisor/topics.c supervisor/topics.h \
 common/config.h common/log.h /usr/include/cjson/cJSON.h
supervisor/topics.h:
common/config.h:
common/log.h:
/usr/include/cjson/cJSON.h:
